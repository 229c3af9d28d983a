"""xl.cfg domain files: parsed, checked key by key, and turned into a scenario's domains.

Design note
-----------
Models the domain configuration file of ``xl create`` (``docs/man/xl.cfg.5.pod.in``,
``docs/man/xl-disk-configuration.5.pod.in``, ``docs/man/xl-network-configuration.5.pod.in``;
parsed in Xen by ``tools/libs/util/libxlu_cfg*.c``): ``KEY = VALUE`` settings, ``#`` comments,
values a quoted string, a number or a ``[ ... ]`` list of them (a list may span lines). Keys map
to a pvsim domain:

* ``name``; ``type`` (``pv``, ``pvh``, ``hvm``; the deprecated ``builder = "hvm"|"generic"``);
  ``xen_platform_pci = 1`` with ``hvm`` gives ``pvhvm`` (the PV drivers over the platform device);
  a ``vif`` with an emulated ``model`` (``e1000``, ``rtl8139``, ...) keeps ``hvm``'s emulated NIC;
* ``memory`` (MiB; libxl's 32 when unset) and ``maxmem`` (>= ``memory``), ``vcpus`` (default 1) and
  ``maxvcpus`` (>= ``vcpus``), ``cpus`` (hard affinity), ``cpu_weight``, ``cap``,
  ``pool`` (only ``Pool-0``: pvsim has one cpupool);
* ``disk`` and ``vif`` specs are parsed and checked (positional ``target, format, vdev, access`` or
  ``key=value``; a backend other than Domain-0 is refused, driver domains are not modelled);
* ``kernel`` (a PV or PVH guest needs it, or a ``bootloader``), ``device_model_version``
  (``qemu-xen``, ``qemu-xen-traditional``);
* ``pvsim_workload`` (a pvsim extension): the workload the domain runs (default ``cpu-int``).

Keys xl knows but pvsim does not model (``uuid``, ``extra``, ``sdl``, ``on_crash``,
``cpus_soft``, ...) are reported as ignored, once each, by name; keys xl does not know are errors
with the nearest valid name. Simplifications: no ``@include``, no ``+=`` settings, no per-vCPU
``cpus`` lists; ``maxmem`` and ``maxvcpus`` are checked but a domain starts with ``memory`` and
``vcpus`` and never balloons or hot-plugs.
"""

from __future__ import annotations

import re
from pathlib import Path

from pvsim.core.errors import ScenarioError
from pvsim.core.schema import suggest, unknown
from pvsim.scenario import Scenario, tomllib

# xl.cfg(5)'s keys (Xen 4.19); the ones pvsim reads are MODELLED
XL_KEYS = frozenset("""
name type builder uuid seclabel init_seclabel max_grant_frames max_maptrack_frames max_grant_version
nomigrate driver_domain device_tree passthrough pool vcpus maxvcpus cpus cpus_soft cpu_weight cap memory
maxmem vnuma on_poweroff on_reboot on_watchdog on_crash on_soft_reset kernel ramdisk cmdline root extra
bootloader bootloader_args firmware pvshim pvshim_path pvshim_cmdline pvshim_extra disk vif vtpm p9
pvcalls vfb channel rdm rdm_mem_boundary usbctrl usbdev pci pci_permissive pci_msitranslate pci_seize
pci_power_mgmt gfx_passthru ioports iomem irqs max_event_channels event_channels vdispl dtdev vsnd vkb
tee e820_host acpi acpi_s3 acpi_s4 acpi_laptop_slate apic nx hpet altp2m altp2mhvm max_altp2m nestedhvm
cpuid acpi_firmware smbios_firmware ms_vm_genid tsc_mode localtime rtc_timeoffset vpt_align timer_mode
mmio_hole hap oos shadow_memory device_model_version device_model_override
device_model_stubdomain_override device_model_stubdomain_seclabel device_model_args
device_model_args_pv device_model_args_hvm device_model_user dm_restrict stubdomain_memory
stubdomain_kernel stubdomain_ramdisk stdvga vga videoram vnc vnclisten vncdisplay vncunused vncpasswd
keymap sdl opengl nographic serial soundhw usb usbdevice usbversion vkb_device vendor_device
xen_platform_pci viridian boot bios bios_path_override hdtype pae pvh gic_version vuart nr_spis
vpmu vmtrace_buf_kb mca_caps msr_relaxed trap_unmapped_accesses spice spicehost spiceport
spicetls_port spicedisable_ticketing spicepasswd spiceagent_mouse spicevdagent spice_clipboard_sharing
spiceusbredirection spice_image_compression spice_streaming_video dm_restrict
""".split())
EXTENSION_KEYS = frozenset({"pvsim_workload"})
MODELLED = frozenset({"name", "type", "builder", "memory", "maxmem", "vcpus", "maxvcpus", "cpus", "cpu_weight",
                      "cap", "pool", "disk", "vif", "kernel", "device_model_version", "xen_platform_pci"})
# xl's guest types -> (pvsim mode, the mode with PV drivers over xen_platform_pci or None, needs a kernel)
TYPES = {"pv": ("pv", None, True), "pvh": ("pvh", None, True), "hvm": ("hvm", "pvhvm", False)}
BUILDERS = {"generic": "pv", "hvm": "hvm"}  # the deprecated builder= -> type
DEFAULT_TYPE = "pv"  # xl's default on x86
EMULATED_NIC_MODELS = frozenset({"e1000", "rtl8139", "ne2k_pci", "pcnet", "i82559er", "virtio-net-pci"})
DISK_FORMATS = frozenset({"raw", "qcow", "qcow2", "vhd", "qed"})
DISK_ACCESS = frozenset({"r", "ro", "w", "rw"})
DISK_KEYS = frozenset({"target", "format", "vdev", "access", "devtype", "backend", "backendtype", "script",
                       "discard", "no-discard", "direct-io-safe", "trusted", "untrusted", "specification",
                       "cdrom"})
VIF_KEYS = frozenset({"mac", "bridge", "gatewaydev", "type", "model", "vifname", "script", "ip", "backend",
                      "rate", "mtu", "vlan", "devid", "trusted", "untrusted", "accel", "forwarddev"})
DM_VERSIONS = frozenset({"qemu-xen", "qemu-xen-traditional"})
_CONTROL = ("0", "Domain-0")

_TOKEN = re.compile(r"""\s*(?:("(?:[^"\\]|\\.)*")|('(?:[^'\\]|\\.)*')|(\[)|(\])|(,)|([^\s,\[\]"'#]+))""")


def _value(text: str, where: str):
    """An xl.cfg value: a string, a number, or a list of strings and numbers."""
    pos = 0
    items: list = []
    in_list = False
    done = False
    scalar = None
    while True:
        m = _TOKEN.match(text, pos)
        if not m or m.end() == pos:
            rest = text[pos:].strip()
            if rest and not rest.startswith("#"):
                raise ScenarioError(where, f"cannot parse {rest!r}")
            break
        pos = m.end()
        dq, sq, lb, rb, comma, bare = m.groups()
        if done:
            raise ScenarioError(where, "text after the value")
        if lb:
            if in_list or scalar is not None:
                raise ScenarioError(where, "nested or misplaced '['")
            in_list = True
            continue
        if rb:
            if not in_list:
                raise ScenarioError(where, "']' without '['")
            done = True
            continue
        if comma:
            if not in_list:
                raise ScenarioError(where, "',' outside a list")
            continue
        v = dq[1:-1] if dq else sq[1:-1] if sq else _number(bare, where)
        if in_list:
            items.append(v)
        elif scalar is None:
            scalar = v
        else:
            raise ScenarioError(where, "two values (a list needs [ ... ])")
    if in_list:
        if not done:
            raise ScenarioError(where, "list without its closing ']'")
        return items
    if scalar is None:
        raise ScenarioError(where, "no value")
    return scalar


def _number(s: str, where: str):
    try:
        return int(s, 0)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            raise ScenarioError(where, f"{s!r} is neither a quoted string nor a number") from None


def parse_xlcfg(text: str, path: str = "xl.cfg") -> dict:
    """The settings of an xl.cfg file, ``{key: value}`` in file order; syntax errors name the line."""
    out: dict = {}
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        raw = lines[i]
        line = raw.strip()
        lineno = i + 1
        i += 1
        if not line or line.startswith("#"):
            continue
        m = re.match(r"([A-Za-z_][A-Za-z0-9_.-]*)\s*(\+?=)\s*(.*)$", line)
        if not m:
            raise ScenarioError(f"{path}:{lineno}", f"expected KEY = VALUE, got {line!r}")
        key, op, val = m.groups()
        val = _strip_comment(val)
        if op == "+=":
            raise ScenarioError(f"{path}:{lineno}: {key}", "'+=' settings are not supported")
        if val.lstrip().startswith("[") and "]" not in val:
            while i < len(lines) and "]" not in val:
                val += "\n" + _strip_comment(lines[i])
                i += 1
        if key in out:
            raise ScenarioError(f"{path}:{lineno}: {key}", "set twice")
        out[key] = (_value(val, f"{path}:{lineno}: {key}"), lineno)
    return out


def _strip_comment(s: str) -> str:
    return re.sub(r"""("[^"]*"|'[^']*')|#.*""", lambda m: m.group(1) or "", s)


def _spec_pairs(spec: str, keys: frozenset, positional: tuple, where: str) -> dict:
    out: dict = {}
    pos = list(positional)
    for part in [p.strip() for p in spec.split(",")]:
        if not part:
            continue
        if "=" in part:
            k, v = (x.strip() for x in part.split("=", 1))
            if k not in keys:
                raise unknown(where, k, keys)
            out[k] = v
        elif part in keys and part not in positional:
            out[part] = True  # a flag such as cdrom or discard
        else:
            while pos and pos[0] in out:
                pos.pop(0)
            if not pos:
                raise ScenarioError(where, f"too many positional parameters in {spec!r}")
            out[pos.pop(0)] = part
    return out


def parse_disk(spec: str, where: str) -> dict:
    """A diskspec (xl-disk-configuration(5)): positional ``target, format, vdev, access`` or keys."""
    d = _spec_pairs(spec, DISK_KEYS, ("target", "format", "vdev", "access"), where)
    if "vdev" not in d:
        raise ScenarioError(where, f"no vdev in {spec!r} (e.g. '/dev/vg/guest,raw,xvda,rw')")
    if d.get("format", "raw") not in DISK_FORMATS:
        raise unknown(f"{where}.format", d["format"], DISK_FORMATS, what="format")
    if d.get("access", "rw") not in DISK_ACCESS:
        raise unknown(f"{where}.access", d["access"], DISK_ACCESS, what="access")
    if d.get("backend", "0") not in _CONTROL:
        raise ScenarioError(f"{where}.backend", "driver domains are not modelled; the backend is Domain-0")
    return d


def parse_vif(spec: str, where: str) -> dict:
    """A vifspec (xl-network-configuration(5)): ``key=value`` pairs; ``''`` is a default vif."""
    d = _spec_pairs(spec, VIF_KEYS, (), where)
    if "mac" in d and not re.fullmatch(r"([0-9a-fA-F]{2}:){5}[0-9a-fA-F]{2}", d["mac"]):
        raise ScenarioError(f"{where}.mac", f"must be six hex octets such as 00:16:3e:00:00:01, got {d['mac']!r}")
    if d.get("backend", "0") not in _CONTROL:
        raise ScenarioError(f"{where}.backend", "driver domains are not modelled; the backend is Domain-0")
    return d


def _int(cfg, key, where, lo=None, hi=None):
    v, _ln = cfg[key]
    if isinstance(v, bool) or not isinstance(v, int):
        raise ScenarioError(where, f"must be an integer, got {v!r}")
    if (lo is not None and v < lo) or (hi is not None and v > hi):
        raise ScenarioError(where, f"must be in {lo}..{hi}, got {v}")
    return v


def _str(cfg, key, where):
    v, _ln = cfg[key]
    if not isinstance(v, str):
        raise ScenarioError(where, f"must be a quoted string, got {v!r}")
    return v


def _list(cfg, key, where):
    v, _ln = cfg[key]
    if isinstance(v, str):
        return [v]
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise ScenarioError(where, "must be a list of quoted specs, e.g. [ '...' ]")
    return v


def domain_from_xlcfg(path: str | Path) -> tuple[dict, list[str]]:
    """(a scenario ``[[domains]]`` table, the xl keys ignored) of one xl.cfg file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ScenarioError(str(path), f"cannot be read ({getattr(e, 'strerror', None) or e})") from None
    cfg = parse_xlcfg(text, p.name)
    f = p.name
    for k, (_v, ln) in cfg.items():
        if k not in XL_KEYS and k not in EXTENSION_KEYS:
            raise ScenarioError(f"{f}:{ln}: {k}", f"unknown key{suggest(k, sorted(XL_KEYS | EXTENSION_KEYS))} "
                                "(not an xl.cfg(5) key)")
    w = lambda k: f"{f}:{cfg[k][1]}: {k}"  # noqa: E731 - the field of a key, with its line
    if "name" not in cfg:
        raise ScenarioError(f"{f}: name", "is mandatory")
    name = _str(cfg, "name", w("name"))
    if "type" in cfg:
        t = _str(cfg, "type", w("type"))
        if t not in TYPES:
            raise unknown(w("type"), t, TYPES, what="type")
    elif "builder" in cfg:
        b = _str(cfg, "builder", w("builder"))
        if b not in BUILDERS:
            raise unknown(w("builder"), b, BUILDERS, what="builder")
        t = BUILDERS[b]
    else:
        t = DEFAULT_TYPE
    mode, pv_drivers_mode, needs_kernel = TYPES[t]
    dom: dict = {"name": name}
    memory = _int(cfg, "memory", w("memory"), 16, 1 << 24) if "memory" in cfg else 32  # libxl's fallback
    if "maxmem" in cfg and _int(cfg, "maxmem", w("maxmem"), 16, 1 << 24) < memory:
        raise ScenarioError(w("maxmem"), f"must be at least memory ({memory} MiB)")
    dom["memory_mib"] = memory
    vcpus = _int(cfg, "vcpus", w("vcpus"), 1, 128) if "vcpus" in cfg else 1
    if "maxvcpus" in cfg and _int(cfg, "maxvcpus", w("maxvcpus"), 1, 128) < vcpus:
        raise ScenarioError(w("maxvcpus"), f"must be at least vcpus ({vcpus})")
    dom["vcpus"] = vcpus
    if "cpus" in cfg:
        dom["cpus"] = _str(cfg, "cpus", w("cpus"))  # checked against the host's pCPUs by the scenario
    if "cpu_weight" in cfg:
        dom["weight"] = _int(cfg, "cpu_weight", w("cpu_weight"), 1, 65535)
    if "cap" in cfg:
        dom["cap"] = _int(cfg, "cap", w("cap"), 0, 100 * 128)
    if "pool" in cfg and _str(cfg, "pool", w("pool")) != "Pool-0":
        raise ScenarioError(w("pool"), f"pvsim has one cpupool, Pool-0; got {cfg['pool'][0]!r}")
    for i, spec in enumerate(_list(cfg, "disk", w("disk")) if "disk" in cfg else []):
        parse_disk(spec, f"{w('disk')}[{i}]")
    models = []
    for i, spec in enumerate(_list(cfg, "vif", w("vif")) if "vif" in cfg else []):
        models.append(parse_vif(spec, f"{w('vif')}[{i}]").get("model"))
    if "kernel" in cfg:
        _str(cfg, "kernel", w("kernel"))
    elif needs_kernel and "bootloader" not in cfg and "firmware" not in cfg:
        raise ScenarioError(f"{f}: kernel", f"a {t} guest needs a kernel (or a bootloader)")
    if "device_model_version" in cfg:
        v = _str(cfg, "device_model_version", w("device_model_version"))
        if v not in DM_VERSIONS:
            raise unknown(w("device_model_version"), v, DM_VERSIONS, what="device model")
    if pv_drivers_mode is not None and "xen_platform_pci" in cfg:
        if _int(cfg, "xen_platform_pci", w("xen_platform_pci"), 0, 1) == 1 and \
                not any(m in EMULATED_NIC_MODELS for m in models if m):
            mode = pv_drivers_mode
    dom["mode"] = mode
    if "pvsim_workload" in cfg:
        dom["workload"] = _str(cfg, "pvsim_workload", w("pvsim_workload"))
    ignored = [k for k in cfg if k not in MODELLED and k not in EXTENSION_KEYS
               and not (k == "xen_platform_pci" and pv_drivers_mode is None)]
    return dom, ignored


def is_xlcfg(path: str | Path) -> bool:
    """A scenario file is TOML (``.toml``); any other existing file given where a scenario goes is an
    xl.cfg (a directory or a missing path is left to the scenario loader's errors)."""
    p = Path(path)
    return p.suffix.lower() != ".toml" and p.is_file()


def scenario_dict(cfgs: list, host: dict | None = None) -> tuple[dict, list[str]]:
    """A scenario table of xl.cfg domains on ``host`` (a scenario table without domains, e.g. a
    small TOML with ``[host]``, ``[scheduler]``, ``[run]``; default: a 4-pCPU modern host under
    credit for 1 s) and the ignored keys, each once (``file: key``)."""
    data = dict(host or {})
    if "host" not in data and "hosts" not in data:
        data["host"] = {"pcpus": 4, "memory_mib": 16384, "profile": "modern"}
    data.setdefault("name", "xl")
    doms = list(data.get("domains", []))
    ignored: list[str] = []
    for c in cfgs:
        d, ign = domain_from_xlcfg(c)
        if any(x.get("name") == d["name"] for x in doms):
            raise ScenarioError(f"{Path(c).name}: name", f"domain {d['name']!r} already exists")
        doms.append(d)
        ignored += [f"{Path(c).name}: {k}" for k in ign]
    data["domains"] = doms
    return data, ignored


def load_scenario(cfgs: list, host: str | Path | None = None, warn=None):
    """A :class:`~pvsim.scenario.Scenario` of xl.cfg files on the host of TOML file ``host`` (or the
    default host); ``warn(text)`` hears the ignored keys, once."""
    base = None
    if host is not None:
        hp = Path(host)
        try:
            base = tomllib.loads(hp.read_text(encoding="utf-8"))
        except OSError as e:
            raise ScenarioError("--host", f"{str(host)!r} cannot be read ({e.strerror})") from None
        except tomllib.TOMLDecodeError as e:
            raise ScenarioError("--host", f"{str(host)!r} is not valid TOML ({e})") from None
    data, ignored = scenario_dict(cfgs, base)
    if ignored and warn is not None:
        warn("xl.cfg keys pvsim does not model, ignored: " + ", ".join(ignored))
    first = Path(cfgs[0]) if cfgs else Path("xl")
    return Scenario.from_dict(data, name=data.get("name", first.stem),
                              base_dir=Path(host).parent if host is not None else first.parent)
