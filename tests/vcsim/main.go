// vcsim for okdbench tests: govmomi's simulator.VPX() inventory behind TLS on 127.0.0.1.
//
// The certificate comes from the test's own CA so clients verify it for real; the login
// is fixed (not the simulator's "any non-empty password") so wrong passwords fail.
// Credentials are read from the environment, never argv, so they stay out of `ps`.
package main

import (
	"crypto/tls"
	"flag"
	"fmt"
	"log"
	"net/url"
	"os"
	"os/signal"
	"syscall"

	"github.com/vmware/govmomi/simulator"
)

func main() {
	listen := flag.String("listen", "127.0.0.1:0", "host:port to listen on")
	certFile := flag.String("cert", "", "PEM server certificate (chain)")
	keyFile := flag.String("key", "", "PEM server key")
	flag.Parse()

	cert, err := tls.LoadX509KeyPair(*certFile, *keyFile)
	if err != nil {
		log.Fatalf("vcsim: cannot load TLS key pair: %v", err)
	}
	model := simulator.VPX()
	if err := model.Create(); err != nil {
		log.Fatalf("vcsim: cannot create inventory: %v", err)
	}
	defer model.Remove()
	enableHA() // hostfail.go: VCSIM_HA=1

	model.Service.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	model.Service.Listen = &url.URL{Host: *listen,
		User: url.UserPassword(os.Getenv("VCSIM_USERNAME"), os.Getenv("VCSIM_PASSWORD"))}
	server := model.Service.NewServer()
	defer server.Close()
	// hostfail.go: host reboot/shutdown. Swapped before the URL is printed, so before any request.
	server.Config.Handler = hostPower(server.Config.Handler)

	u := *server.URL
	u.User = nil
	fmt.Printf("VCSIM_URL=%s\n", u.String())
	os.Stdout.Sync()

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
}
