"""console_io and xen_version: success and every errno path."""

from __future__ import annotations

from hypercalls import args as A
from hypercalls import errno as E
from hypercalls import ops as O
from pvsim.hypervisor.handlers import core


# ------------------------------------------------------------------ console_io
def test_console_write_by_control_domain(hv, dom0):
    assert dom0("console_io", O.CONSOLEIO_write, 5, b"hello world") == 0
    assert b"".join(dom0.dom.console) == b"hello"
    data = bytes(range(256)) * 2
    assert dom0("console_io", O.CONSOLEIO_write, len(data), data) == 0
    assert len(dom0.dom.console) == 1 + 5  # 512 bytes in 127-byte chunks
    assert hv.meter.counts["console.bytes"] == 517
    assert dom0("console_io", O.CONSOLEIO_write, 0, None) == 0


def test_console_write_faults_after_the_readable_part(dom0):
    assert dom0("console_io", O.CONSOLEIO_write, 300, b"x" * 200) == -E.EFAULT
    assert b"".join(dom0.dom.console) == b"x" * 127  # first chunk was emitted
    assert dom0("console_io", O.CONSOLEIO_write, 3, 12345) == -E.EFAULT
    assert dom0("console_io", O.CONSOLEIO_write, None, b"abc") == -E.EINVAL


def test_console_io_needs_privilege(hv, pvu, hvm):
    assert pvu("console_io", O.CONSOLEIO_write, 3, b"abc") == -E.EPERM
    assert hvm("console_io", O.CONSOLEIO_read, 3, bytearray(3)) == -E.EPERM
    assert pvu("console_io", 9, 0, None) == -E.EPERM  # XSM check comes first
    assert pvu.dom.console == []
    pvu.dom.is_console = True  # a domain given the console may write; non-printables stripped
    assert pvu("console_io", O.CONSOLEIO_write, 5, b"a\x01b\nc") == 0
    assert pvu.dom.console == [b"ab\nc"]


def test_console_read(hv, dom0):
    buf = bytearray()
    assert dom0("console_io", O.CONSOLEIO_read, 10, buf) == 0  # no serial input
    hv.serial_rx = bytearray(b"typed")
    assert dom0("console_io", O.CONSOLEIO_read, 3, buf) == 3
    assert bytes(buf) == b"typ" and hv.serial_rx == bytearray(b"ed")
    assert dom0("console_io", O.CONSOLEIO_read, 3, b"ro") == -E.EFAULT  # not writable
    assert dom0("console_io", O.CONSOLEIO_read, 2**31, buf) == -E.E2BIG
    assert dom0("console_io", 2, 0, None) == -E.ENOSYS


# ------------------------------------------------------------------ xen_version
def test_xen_version_number(pvu, hvm, pv32):
    for c in (pvu, hvm, pv32):
        assert c("xen_version", O.XENVER_version, None) == (4 << 16) | 23


def test_xen_version_strings(pvu, dom0):
    ev = A.XenExtraversion()
    assert pvu("xen_version", O.XENVER_extraversion, ev) == 0 and ev.extraversion == b"-unstable"
    ci = A.XenCompileInfo()
    assert pvu("xen_version", O.XENVER_compile_info, ci) == 0 and ci.compiler
    cap = A.XenCapabilitiesInfo()
    assert pvu("xen_version", O.XENVER_capabilities, cap) == 0
    assert cap.info.startswith(b"xen-3.0-x86_64")
    cs = A.XenChangesetInfo()
    assert pvu("xen_version", O.XENVER_changeset, cs) == 0 and b"c447b7308b" in cs.info
    cl = A.XenCommandline()
    assert pvu("xen_version", O.XENVER_commandline, cl) == 0 and cl.cmdline == b"<denied>"
    assert dom0("xen_version", O.XENVER_commandline, cl) == 0 and cl.cmdline == b""
    gh = A.XenDomainHandle()
    assert pvu("xen_version", O.XENVER_guest_handle, gh) == 0 and len(gh.handle) == 16
    for cmd, wrong in ((O.XENVER_extraversion, None), (O.XENVER_compile_info, A.XenExtraversion()),
                       (O.XENVER_capabilities, b""), (O.XENVER_changeset, None),
                       (O.XENVER_platform_parameters, None), (O.XENVER_get_features, None),
                       (O.XENVER_guest_handle, None), (O.XENVER_commandline, None)):
        assert pvu("xen_version", cmd, wrong) == -E.EFAULT, cmd


def test_xen_version_platform_parameters(pvu, pv32, hvm):
    p = A.XenPlatformParameters()
    assert pvu("xen_version", O.XENVER_platform_parameters, p) == 0
    assert p.virt_start == 0xFFFF800000000000
    assert pv32("xen_version", O.XENVER_platform_parameters, p) == 0 and p.virt_start == 0xF5800000
    assert hvm("xen_version", O.XENVER_platform_parameters, p) == 0 and p.virt_start == 0


def test_xen_version_features(pvu, hvm, dom0):
    fi = A.XenFeatureInfo(submap_idx=0)
    assert pvu("xen_version", O.XENVER_get_features, fi) == 0
    assert fi.submap & (1 << O.XENFEAT_mmu_pt_update_preserve_ad)
    assert fi.submap & (1 << O.XENFEAT_direct_mapped)
    assert not fi.submap & (1 << O.XENFEAT_auto_translated_physmap)
    assert not fi.submap & (1 << O.XENFEAT_dom0)
    assert hvm("xen_version", O.XENVER_get_features, fi) == 0
    assert fi.submap & (1 << O.XENFEAT_auto_translated_physmap)
    assert fi.submap & (1 << O.XENFEAT_hvm_callback_vector)
    assert dom0("xen_version", O.XENVER_get_features, fi) == 0 and fi.submap & (1 << O.XENFEAT_dom0)
    assert pvu("xen_version", O.XENVER_get_features, A.XenFeatureInfo(submap_idx=1)) == -E.EINVAL


def test_xen_version_pagesize_varbuf_and_unknown(pvu, dom0):
    assert pvu("xen_version", O.XENVER_pagesize, None) == 4096
    assert pvu("xen_version", O.XENVER_pagesize, A.XenVarbuf()) == -E.EINVAL
    assert pvu("xen_version", O.XENVER_extraversion2, None) == len(b"-unstable")  # length query
    small = A.XenVarbuf(len=3)
    assert pvu("xen_version", O.XENVER_extraversion2, small) == -E.ENOBUFS
    vb = A.XenVarbuf(len=128)
    assert pvu("xen_version", O.XENVER_capabilities2, vb) == len(core.XEN_CAPABILITIES)
    assert vb.buf == core.XEN_CAPABILITIES
    assert pvu("xen_version", O.XENVER_changeset2, "x") == -E.EFAULT
    assert pvu("xen_version", O.XENVER_build_id, vb) == -E.EPERM  # XSM_PRIV
    assert pvu("xen_version", O.XENVER_commandline2, vb) == -E.EPERM
    assert dom0("xen_version", O.XENVER_commandline2, vb) == 0
    assert dom0("xen_version", O.XENVER_build_id, vb) == -E.ENODATA
    assert pvu("xen_version", 99, None) == -E.ENOSYS
    assert dom0("xen_version", 99, None) == -E.ENOSYS
    assert pvu("xen_version", None, None) == -E.ENOSYS


def test_console_read_count_must_be_a_number(dom0):
    assert dom0("console_io", O.CONSOLEIO_read, None, bytearray(4)) == -E.EINVAL
