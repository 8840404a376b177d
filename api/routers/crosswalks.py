"""Crosswalks between boundary sets, as CSV: each source unit's share in each target unit.

Thin: :func:`placespend.runs.crosswalk_table` builds (or reads back) the atoms and crosswalk.
For re-expressing figures on another vintage (Hackney's 19 pre-2014 wards on its 21 wards of
2014), or for taking the weights into another tool.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response

from api.deps import ConnDep
from placespend.runs import crosswalk_table

router = APIRouter(tags=["Crosswalks"])
CSV = "text/csv; charset=utf-8"


@router.get(
    "/crosswalks/{source}/{target}.csv", response_class=Response,
    summary="Each unit of one boundary set split over the units of another, as CSV",
    responses={200: {"content": {CSV: {}},
                     "description": "source_code, target_code, weight, basis, vintages"},
               404: {"description": "No such boundary set"}},
)
def crosswalk_csv(
    conn: ConnDep, source: str, target: str,
    basis: Annotated[Literal["population", "area"], Query(
        description="population: by residents (mid-2020 ONS, per small area); area: by land")
    ] = "population",
    zones: Annotated[str, Query(
        description="the small areas cut by the source units", examples=["london-lsoa-2011"])
    ] = "london-lsoa-2011",
) -> Response:
    """One row per (source unit, target unit) sharing residents (or land).

    A source unit's weights add to 1 where all of it lies inside the target set, less where
    part of it lies outside (generalised boundaries disagree at their edges).
    """
    weights = crosswalk_table(conn, source, target, basis=basis, zone_set=zones)
    response = Response(weights.to_csv(index=False), media_type=CSV)
    response.headers["Content-Disposition"] = (
        f'attachment; filename="crosswalk-{source}-to-{target}-{basis}.csv"')
    return response
