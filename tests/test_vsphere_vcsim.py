"""The simulator fixture itself: verified TLS, fixed login, the VPX inventory."""

import ssl

import pytest
from pyVim.connect import SmartConnect
from pyVmomi import vim

pytestmark = pytest.mark.needs_vcsim


def test_vcsim_serves_vpx_inventory_over_verified_tls(vcsim):
    si = vcsim.connect()
    about = si.content.about
    assert about.apiType == "VirtualCenter"
    dc = si.content.searchIndex.FindByInventoryPath("DC0")
    assert isinstance(dc, vim.Datacenter)


def test_vcsim_rejects_clients_without_its_ca(vcsim):
    ctx = ssl.create_default_context(cafile=str(vcsim.other_ca_bundle))
    with pytest.raises(ssl.SSLCertVerificationError):
        SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd=vcsim.password, sslContext=ctx)


def test_vcsim_rejects_a_wrong_password(vcsim):
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=vcsim.host, port=vcsim.port, user=vcsim.username, pwd="not-" + vcsim.password,
                     sslContext=vcsim.ssl_context())
