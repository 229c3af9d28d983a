from types import SimpleNamespace as S

from pvsim.core.engine import Engine
from pvsim.io.devices import Pipe
from pvsim.migrate.dirty import GuestMemory, WriteModel
from pvsim.migrate.save import Migration, MigrationOptions


def migrate(policy="xen", *, ram_mib=64, rate_mbps=1000.0, latency_us=100.0, ws_mib=None, ram_frac=None,
            mb_per_s=0.0, pattern="uniform", seed=1, free_frac=0.0, **opts):
    e = Engine(seed=seed)
    w = S(mib=ws_mib, ram_frac=ram_frac, mb_per_s=mb_per_s, pattern=pattern, hot_frac=0.1, hot_share=0.9,
          free_frac=free_frac)
    mem = GuestMemory(WriteModel.of(w, ram_mib, seed_offset=seed), seed)
    m = Migration(e, Pipe(e, rate_mbps, latency_us), mem, MigrationOptions(policy=policy, **opts))
    e.run_until(e.process(m.process()))
    return m.out
