"""Flat per-feature properties: what a map popup, a GIS attribute table or a CSV shows.

For each target unit (ward): ``code``, ``name``, ``population`` (all residents, rounded),
``total`` and ``total_pence`` (all bodies), ``per_head`` (total / population), ``cofog_01`` ...
``cofog_10`` (pounds per COFOG division), ``body_<slug>`` (pounds per body) and
``share_direct`` / ``share_agency_estimate`` / ``share_proxy`` / ``share_area`` /
``share_best_fit`` (fractions of the total by method, adding to exactly 1).
Amounts are summed in whole pence and only turned into pounds (2 dp) at the end.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from allocation.money import IdLookup, group_sum

COFOG_DIVISIONS = tuple(f"{i:02d}" for i in range(1, 11))
#: Every method a figure can be made by, strongest evidence first (docs/methods.md section 2).
SHARE_METHODS = ("direct", "agency_estimate", "proxy", "area", "best_fit")
_DESCRIPTIONS = {
    "code": "Area code (GSS code for wards); also the feature id",
    "name": "Area name",
    "population": "All usual residents, rounded to a whole person",
    "total": "All apportioned spend in the area, pounds (2 dp)",
    "total_pence": "All apportioned spend in the area, exact whole pence (a whole number)",
    "per_head": "total / population, pounds (2 dp); null where the population is 0",
    "total_by_area": "What the area's total would be if every line a population proxy spread "
                     "were spread by land area instead, pounds (2 dp)",
    "total_best_fit": "What the area's total would be if every small area (LSOA) went wholly "
                      "to the area holding most of its residents (ONS-style best fit), pounds",
    "total_by_alternative_proxy": "What the area's total would be if every line whose proxy "
                                  "table row names an alternative proxy were spread by that "
                                  "one instead, pounds (2 dp)",
    "range_low": "The lowest of total, total_by_area, total_best_fit and "
                 "total_by_alternative_proxy, pounds (2 dp): how far the figure hangs on the "
                 "choice of method",
    "range_high": "The highest of total, total_by_area, total_best_fit and "
                  "total_by_alternative_proxy, pounds (2 dp)",
    "confidence": "A to E, from how the figure was made: A at least 75% placed by what the "
                  "bodies said about the place (direct or their own estimates), B at least 50%, "
                  "C at least 25%, D mostly spread by a population proxy, E mostly by land area "
                  "or whole-area best fit (docs/methods.md)",
}

#: Confidence grades from the evidence share (direct + agency estimate), strongest first.
GRADES = (("A", 0.75), ("B", 0.5), ("C", 0.25))


def property_schema(
    properties: pd.DataFrame, divisions: dict[str, str], bodies: dict[str, str]
) -> list[dict[str, object]]:
    """Name, JSON type, nullability and meaning of each column of :func:`feature_properties`.

    ``divisions`` names COFOG divisions by code and ``bodies`` public bodies by slug. Stored with
    each published collection, so clients need not guess types from a first page of features.
    """
    schema: list[dict[str, object]] = []
    for name, column in properties.items():
        name = str(name)
        if pd.api.types.is_integer_dtype(column):
            kind = "integer"
        elif pd.api.types.is_numeric_dtype(column) or name == "per_head":
            kind = "number"
        else:
            kind = "string"
        if name in _DESCRIPTIONS:
            meaning = _DESCRIPTIONS[name]
        elif name.startswith("cofog_"):
            code = name.removeprefix("cofog_")
            meaning = f"Pounds (2 dp) on COFOG division {code}, {divisions.get(code, '?')}"
        elif name.startswith("body_"):
            slug = name.removeprefix("body_")
            meaning = f"Pounds (2 dp) spent by {bodies.get(slug, slug)}"
        elif name.startswith("share_"):
            meaning = f"Fraction (0-1, 6 dp) of the total placed by the {name[6:]} method"
        else:
            meaning = ""
        schema.append({"name": name, "type": kind, "nullable": bool(column.isna().any()),
                       "description": meaning})
    return schema


def feature_properties(
    target_alloc: pd.DataFrame,
    slices: pd.DataFrame,
    targets: pd.DataFrame,
    population: pd.Series,
    bodies: list[str],
) -> pd.DataFrame:
    """Build one row of flat properties per target unit, in ``targets`` order.

    ``target_alloc``: target_code (text, or a Categorical: its units are then found once per
    distinct code), slice_id, amount_pence. ``slices``: slice_id, body, cofog_code, method.
    ``targets``: code, name (every unit, with money or not). ``population``: residents per
    target code. ``bodies``: body slugs to give a column each.
    """
    codes = targets["code"].to_numpy()
    column = target_alloc["target_code"]
    if isinstance(column.dtype, pd.CategoricalDtype):
        unit_of_code = pd.Index(codes).get_indexer(column.cat.categories)
        row = np.append(unit_of_code, -1)[column.cat.codes.to_numpy()]
    else:
        row = pd.Index(codes).get_indexer(column.to_numpy())
    if (row < 0).any():
        bad = column.to_numpy()[row < 0][0]
        raise ValueError(f"target {bad!r} has money but is not one of the units")
    slice_ids = slices["slice_id"].to_numpy(dtype=np.int64)
    lookup = IdLookup(slice_ids)
    position = np.full(lookup.size, -1, dtype=np.intp)
    position[lookup.slots(slice_ids)] = np.arange(len(slice_ids))
    # The row of ``slices`` each amount's slice is (-1 for a slice not in ``slices``).
    slice_row = lookup.take(position, target_alloc["slice_id"].to_numpy(dtype=np.int64))
    pence = target_alloc["amount_pence"].to_numpy(dtype=np.int64)

    def pence_by(labels: pd.Series, keys: tuple[str, ...] | list[str]) -> np.ndarray:
        """(units x keys) whole pence, one column per key, summed exactly."""
        key_of_slice = pd.Index(list(keys)).get_indexer(labels.to_numpy())
        key = np.append(key_of_slice, -1)[slice_row]
        keep = key >= 0
        cell = row[keep].astype(np.int64) * len(keys) + key[keep]
        return group_sum(pence[keep], cell, len(codes) * len(keys)).reshape(
            len(codes), len(keys))

    total = group_sum(pence, row, len(codes))
    people = population.reindex(codes).fillna(0.0).to_numpy(dtype=np.float64)
    divisions = pence_by(slices["cofog_code"].astype(str).str.slice(0, 2), COFOG_DIVISIONS)
    per_body = pence_by(slices["body"].astype(str), bodies)
    per_method = pence_by(slices["method"].astype(str), SHARE_METHODS)

    columns: dict[str, np.ndarray] = {"code": codes, "name": targets["name"].to_numpy()}
    columns["population"] = np.rint(people).astype(np.int64)
    columns["total"] = total / 100
    # Whole pence, written as a JSON number with ".0": QGIS 3.22 and GDAL 3.6 guess a field's
    # type from the first features they see and took small ward totals for 32-bit integers,
    # wrapping every ward over £21.47m. A float64 holds whole pence exactly up to 2**53.
    columns["total_pence"] = total.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        per_head = np.where(people > 0, np.round(total / 100 / people, 2), np.nan)
    # None, not NaN, where there is no population: JSON has no NaN.
    columns["per_head"] = np.where(np.isnan(per_head), None, per_head.astype(object))
    for i, division in enumerate(COFOG_DIVISIONS):
        columns[f"cofog_{division}"] = divisions[:, i] / 100
    for i, body in enumerate(bodies):
        columns[f"body_{body}"] = per_body[:, i] / 100
    shares = method_shares(per_method, total)
    for i, method in enumerate(SHARE_METHODS):
        columns[f"share_{method}"] = shares[:, i]
    columns["confidence"] = confidence(shares)
    out = pd.DataFrame(columns)
    return out


def method_shares(per_method: np.ndarray, total: np.ndarray) -> np.ndarray:
    """Each row's fraction of its total by method, to 6 dp, adding to exactly 1.

    Rounding each share on its own could leave the row a millionth off 1; the rounding residue
    goes to the row's largest share. A row with nothing placed (total 0) is all area: the
    weakest evidence, since nothing says where it went.
    """
    per_method = np.asarray(per_method, dtype=np.float64).reshape(len(total), -1)
    total = np.asarray(total, dtype=np.float64)
    safe = np.where(total != 0, total, 1.0)
    share = np.round(per_method / safe[:, None], 6)
    empty = total == 0
    share[empty] = 0.0
    share[empty, SHARE_METHODS.index("area")] = 1.0
    biggest = np.argmax(np.abs(share), axis=1)
    rows = np.arange(len(total))
    share[rows, biggest] = np.round(share[rows, biggest] + (1.0 - share.sum(axis=1)), 6)
    return share


def confidence(shares: np.ndarray) -> np.ndarray:
    """A grade per row of :func:`method_shares`: how much of the figure rests on evidence.

    The evidence share is what was placed directly or by the body's own estimate. A, B and C
    need at least 75 %, 50 % and 25 % of it; below that the figure is an estimate: D when the
    population proxy placed more than land area (in a best-fit publication the proxy's money
    shows as best fit, and counts as the proxy), else E. Shares are taken as magnitudes (a
    negative line's share counts for its size).
    """
    share = np.abs(np.asarray(shares, dtype=np.float64))
    weight = share.sum(axis=1)
    share = share / np.where(weight > 0, weight, 1.0)[:, None]
    col = {m: share[:, i] for i, m in enumerate(SHARE_METHODS)}
    evidence = col["direct"] + col["agency_estimate"]
    grade = np.where(col["proxy"] + col["best_fit"] > col["area"], "D", "E").astype(object)
    for letter, floor in reversed(GRADES):
        grade = np.where(evidence >= floor - 1e-9, letter, grade)
    return grade


def budget(
    target_alloc: pd.DataFrame, slices: pd.DataFrame, population: float
) -> dict[str, object]:
    """The budget of one area in exact pence: total, per head, by body, function and method.

    ``target_alloc``: slice_id, amount_pence of the area (one target's rows of
    :func:`allocation.crosswalk.to_targets`); ``slices``: slice_id, body, cofog_code, method;
    ``population``: residents of the area (float). Pounds are derived from pence at the end.
    """
    pence = dict(zip(target_alloc["slice_id"].tolist(), target_alloc["amount_pence"].tolist(),
                     strict=True))
    total = sum(pence.values())
    rows = [(str(b), str(c)[:2], str(m), pence.get(int(i), 0)) for i, b, c, m in slices[
        ["slice_id", "body", "cofog_code", "method"]].itertuples(index=False, name=None)]

    def pence_by(field: int) -> dict[str, int]:
        out: dict[str, int] = {}
        for row in rows:
            out[row[field]] = out.get(row[field], 0) + int(row[3])
        return {k: v for k, v in sorted(out.items()) if v}

    by_method = pence_by(2)
    shares = method_shares(np.array([[by_method.get(m, 0) for m in SHARE_METHODS]]),
                           np.array([total]))
    return {
        "total_pence": total,
        "total": total / 100,
        "population": round(float(population), 1),
        "per_head": round(total / 100 / population, 2) if population > 0 else None,
        "by_body_pence": pence_by(0),
        "by_function_pence": pence_by(1),
        "by_method_pence": by_method,
        "method_shares": dict(zip(SHARE_METHODS, shares[0].tolist(), strict=True)),
        "confidence": str(confidence(shares)[0]),
    }
