// Host failure for the HA tests: what govmomi 0.24's simulator lacks, added at the HTTP boundary.
//
// - RebootHost_Task / ShutdownHost_Task on a HostSystem: the task succeeds (refused with
//   InvalidState when force is false and the host runs VMs outside maintenance mode, as ESXi does);
//   the host then goes runtime.connectionState=notResponding, runtime.powerState=unknown, as vCenter
//   shows a host that stopped answering. A rebooted host is connected again after
//   VCSIM_HOST_REBOOT_MS (default 1000); a shut-down host stays down. VMs on the host are left
//   as they were (this simulator has no HA: a test plays HA's part through the API).
// - VCSIM_HA=1: vSphere HA is switched on (dasConfig.enabled, host monitoring, restart priority
//   medium) in every cluster of the inventory at start, because this simulator ignores dasConfig
//   in ReconfigureComputeResource_Task.
//
// Changes go through simulator.Map.Update, so PropertyCollector.WaitForUpdatesEx reports them.
package main

import (
	"bytes"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/types"
)

var (
	hostOp    = regexp.MustCompile(`<(RebootHost_Task|ShutdownHost_Task)\b`)
	thisRef   = regexp.MustCompile(`<_this[^>]*>([^<]+)</_this>`)
	forceFlag = regexp.MustCompile(`<force[^>]*>\s*(true|1)\s*</force>`)
)

const maxBody = 1 << 20

// enableHA switches vSphere HA on in every cluster when VCSIM_HA=1.
func enableHA() {
	if os.Getenv("VCSIM_HA") != "1" {
		return
	}
	for _, obj := range simulator.Map.All("ClusterComputeResource") {
		cluster := obj.(*simulator.ClusterComputeResource)
		cfg := cluster.ConfigurationEx.(*types.ClusterConfigInfoEx)
		cfg.DasConfig.Enabled = types.NewBool(true)
		cfg.DasConfig.HostMonitoring = string(types.ClusterDasConfigInfoServiceStateEnabled)
		cfg.DasConfig.AdmissionControlEnabled = types.NewBool(true)
		cfg.DasConfig.DefaultVmSettings = &types.ClusterDasVmSettings{
			RestartPriority: string(types.ClusterDasVmSettingsRestartPriorityMedium),
		}
	}
}

func rebootDelay() time.Duration {
	ms, err := strconv.Atoi(os.Getenv("VCSIM_HOST_REBOOT_MS"))
	if err != nil || ms < 0 {
		ms = 1000
	}
	return time.Duration(ms) * time.Millisecond
}

// hostPower answers RebootHost_Task and ShutdownHost_Task itself and passes every other call on.
func hostPower(next http.Handler) http.Handler {
	delay := rebootDelay()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			next.ServeHTTP(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		_ = r.Body.Close()
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		op := hostOp.FindSubmatch(body)
		if op == nil {
			r.Body = io.NopCloser(bytes.NewReader(body))
			next.ServeHTTP(w, r)
			return
		}
		if !loggedIn(next, r) {
			fault(w, "NotAuthenticated", "no session")
			return
		}
		name := string(op[1])
		this := thisRef.FindSubmatch(body)
		if this == nil {
			fault(w, "InvalidRequest", "no _this")
			return
		}
		ref := types.ManagedObjectReference{Type: "HostSystem", Value: string(this[1])}
		host, ok := simulator.Map.Get(ref).(*simulator.HostSystem)
		if !ok {
			fault(w, "ManagedObjectNotFound", "no such host")
			return
		}
		force := forceFlag.Match(body)
		reboot := name == "RebootHost_Task"
		var task types.ManagedObjectReference
		simulator.Map.WithLock(host, func() {
			task = simulator.CreateTask(host, map[bool]string{true: "rebootHost", false: "shutdownHost"}[reboot],
				func(*simulator.Task) (types.AnyType, types.BaseMethodFault) {
					return nil, failHost(host, force, reboot, delay)
				}).Run()
		})
		respond(w, name, task)
	})
}

// loggedIn asks the simulator itself whether the request's session cookie is a live session:
// CurrentTime, like every call but the login ones, is refused without one.
func loggedIn(next http.Handler, r *http.Request) bool {
	probe := fmt.Sprintf(envelope, `<CurrentTime xmlns="urn:vim25"><_this type="ServiceInstance">ServiceInstance</_this></CurrentTime>`)
	req := httptest.NewRequest(http.MethodPost, r.URL.String(), strings.NewReader(probe))
	for _, c := range r.Cookies() {
		req.AddCookie(c)
	}
	rec := httptest.NewRecorder()
	next.ServeHTTP(rec, req)
	return rec.Code == http.StatusOK
}

func failHost(host *simulator.HostSystem, force, reboot bool, delay time.Duration) types.BaseMethodFault {
	log.Printf("hostfail: %s of %s (force %v, %s, %d VMs)", map[bool]string{true: "reboot", false: "shutdown"}[reboot],
		host.Name, force, host.Runtime.ConnectionState, len(host.Vm))
	if host.Runtime.ConnectionState != types.HostSystemConnectionStateConnected {
		return &types.InvalidState{}
	}
	if !force && !host.Runtime.InMaintenanceMode && len(host.Vm) > 0 {
		return &types.InvalidState{}
	}
	simulator.Map.Update(host, []types.PropertyChange{
		{Name: "runtime.connectionState", Val: types.HostSystemConnectionStateNotResponding},
		{Name: "runtime.powerState", Val: types.HostSystemPowerStateUnknown},
	})
	if reboot {
		go func() {
			time.Sleep(delay)
			simulator.Map.WithLock(host, func() {
				now := time.Now()
				simulator.Map.Update(host, []types.PropertyChange{
					{Name: "runtime.connectionState", Val: types.HostSystemConnectionStateConnected},
					{Name: "runtime.powerState", Val: types.HostSystemPowerStatePoweredOn},
					{Name: "runtime.bootTime", Val: &now},
				})
			})
		}()
	}
	return nil
}

const envelope = `<?xml version="1.0" encoding="UTF-8"?>` +
	`<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" ` +
	`xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" ` +
	`xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>%s</soapenv:Body></soapenv:Envelope>`

func respond(w http.ResponseWriter, name string, task types.ManagedObjectReference) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	fmt.Fprintf(w, envelope, fmt.Sprintf(`<%sResponse xmlns="urn:vim25"><returnval type="Task">%s</returnval></%sResponse>`,
		name, task.Value, name))
}

func fault(w http.ResponseWriter, kind, msg string) {
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusInternalServerError)
	fmt.Fprintf(w, envelope, fmt.Sprintf(`<soapenv:Fault><faultcode>ServerFaultCode</faultcode><faultstring>%s</faultstring>`+
		`<detail><%sFault xmlns="urn:vim25" xsi:type="%s"></%sFault></detail></soapenv:Fault>`, msg, kind, kind, kind))
}
