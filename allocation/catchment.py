"""Catchments: who a site serves, from where the sites are and how big each one is.

Money paid to a site (a GP practice) is *delivered* there; it *serves* the residents who use the
site, and they live around it, not only in the ward the site stands in. Where a body gives no
list of its users' home areas, a catchment is modelled from the sites themselves: a
production-constrained gravity (Huff) model, the standard way to estimate GP practice
catchments from list sizes. A resident of atom *a* is registered with site *j* with probability

    P(a, j) = S_j * exp(-d(a, j) / DECAY_M) / sum over sites k within REACH_M of a of the same

where S_j is the site's size (registered patients) and d the straight-line distance from a
point inside the atom to the site. Site *j*'s money is then spread over the atoms in proportion
to residents(a) * P(a, j): the residents it is expected to serve. Sites compete: a practice
with a bigger neighbour next door serves fewer of the residents between them.

Worked example: two practices 2 km apart, sizes 6,000 and 2,000, and an atom of 100 residents
midway (1 km from each): P = 6,000e^-1 / (6,000e^-1 + 2,000e^-1) = 0.75 for the first, 0.25 for
the second; the first practice's money reaches that atom with weight 100 x 0.75 = 75.

This module is the model only: it returns, per site, the atoms it reaches and P(a, j) as
membership weights, for :func:`allocation.apportion.apportion` to multiply by the residents.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

#: Distance over which a site's pull falls by a factor e (metres). About the median distance
#: from home to GP practice in London; a documented modelling choice, not a measured fit.
DECAY_M = 1_000.0
#: Sites further than this from an atom do not serve it (metres).
REACH_M = 5_000.0
#: Prefix of the "area set" of a line spread over its site's catchment (``catchment@SET``);
#: its codes are the sites' codes.
CATCHMENT_PREFIX = "catchment@"
#: Atoms are paired with sites this many at a time (bounded memory).
_BLOCK = 2_000


def catchment_weights(atoms: pd.DataFrame, sites: pd.DataFrame, *,
                      decay_m: float = DECAY_M, reach_m: float = REACH_M) -> pd.DataFrame:
    """P(a, j) for every atom and every site within reach of it.

    ``atoms``: atom_id, x, y (metres). ``sites``: code, x, y, size (>= 0). Returns code,
    atom_id, weight (P(a, j) > 0), ordered by code then atom_id; for each atom with a site
    within reach the weights over sites add up to 1 (unless every such site has size 0).
    """
    ax = atoms["x"].to_numpy(dtype=np.float64)
    ay = atoms["y"].to_numpy(dtype=np.float64)
    ids = atoms["atom_id"].to_numpy(dtype=np.int64)
    sx = sites["x"].to_numpy(dtype=np.float64)
    sy = sites["y"].to_numpy(dtype=np.float64)
    size = np.maximum(sites["size"].to_numpy(dtype=np.float64), 0.0)
    codes = sites["code"].to_numpy(dtype=object)
    out_site, out_atom, out_w = [], [], []
    for start in range(0, len(ids), _BLOCK):
        stop = min(start + _BLOCK, len(ids))
        d = np.hypot(ax[start:stop, None] - sx[None, :], ay[start:stop, None] - sy[None, :])
        pull = np.where(d <= reach_m, size[None, :] * np.exp(-d / decay_m), 0.0)
        total = pull.sum(axis=1, keepdims=True)
        p = np.divide(pull, total, out=np.zeros_like(pull), where=total > 0)
        a, j = np.nonzero(p > 0)
        out_atom.append(ids[start:stop][a])
        out_site.append(j)
        out_w.append(p[a, j])
    site = np.concatenate(out_site) if out_site else np.zeros(0, dtype=np.intp)
    atom = np.concatenate(out_atom) if out_atom else np.zeros(0, dtype=np.int64)
    weight = np.concatenate(out_w) if out_w else np.zeros(0)
    order = np.lexsort((atom, site))
    return pd.DataFrame({"code": codes[site[order]] if len(order) else np.array([], object),
                         "atom_id": atom[order], "weight": weight[order]})
