"""Reference-compatible attack variants reproducing github mariusbock/leakage_har.

See attacks.md, "What the paper's own code actually ran". Registered in :mod:`attacks.registry`
as ``leakage_har.llg``, ``leakage_har.llg_star``, ``leakage_har.ebi``, ``leakage_har.llbg`` and
``leakage_har.ilrg``; each module docstring says how the variant differs from the published method.
"""

from attacks.leakage_har.bias_based import leakage_har_ebi, leakage_har_ilrg, leakage_har_llbg
from attacks.leakage_har.weight_based import leakage_har_llg, leakage_har_llg_star

__all__ = [
    "leakage_har_ebi",
    "leakage_har_ilrg",
    "leakage_har_llbg",
    "leakage_har_llg",
    "leakage_har_llg_star",
]
