"""A tiny hand-computed world in British National Grid, shared by several tests.

Two small areas (zones) and two wards, 100 m high, near Hackney::

    x:  0        100  150  200   (+ X0)
        +---------+----+----+
        |   Z1    |  Z2     |      zones:  Z1 = [0,100],  Z2 = [100,200]
        +---------+----+----+      wards:  W1 = [0,150],  W2 = [150,200]
        |<---- W1 ---->| W2 |      borough B = W1 + W2

Residents: Z1 300, Z2 100 (so W1 holds 300 + 50, W2 50). Aged 0-15: Z1 0, Z2 50. Aged 65+: none.
Lines (pence) and the ward answers worked by hand:

- A  100000 over B by residents:   atoms 300 : 50 : 50  -> W1 87500, W2 12500
- B   -1000 over B by 0-15:        atoms 0 : 25 : 25    -> W1  -500, W2  -500
- C       1 over B by residents:   quotas .75/.125/.125 -> W1     1, W2     0
- D     333 over B by 65+ (none):  by area 2 : 1 : 1    -> 166.5/83.25/83.25 -> W1 250, W2 83
- E     700 over W2 itself:        direct               -> W1     0, W2   700

Totals: W1 87251, W2 12783; together 100034, every line's pence.
"""

from __future__ import annotations

import geopandas as gpd
import pandas as pd
from shapely.geometry import box

X0, Y0 = 533_000.0, 184_000.0
BNG = 27700


def rect(x1: float, x2: float) -> object:
    return box(X0 + x1, Y0, X0 + x2, Y0 + 100)


def zones() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["Z1", "Z2"], "name": ["Zone 1", "Zone 2"], "parent_code": [None, None]},
        geometry=[rect(0, 100), rect(100, 200)],
        crs=BNG,
    )


def wards() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["W1", "W2"], "name": ["Ward One", "Ward Two"], "parent_code": ["B", "B"]},
        geometry=[rect(0, 150), rect(150, 200)],
        crs=BNG,
    )


def borough() -> gpd.GeoDataFrame:
    return gpd.GeoDataFrame(
        {"code": ["B"], "name": ["Borough"], "parent_code": [None]},
        geometry=[rect(0, 200)],
        crs=BNG,
    )


PROXY_VALUES = pd.DataFrame(
    {
        "proxy": ["residents-all", "residents-all", "residents-0-15", "residents-0-15",
                  "residents-65-plus", "residents-65-plus"],
        "unit_code": ["Z1", "Z2", "Z1", "Z2", "Z1", "Z2"],
        "value": [300.0, 100.0, 0.0, 50.0, 0.0, 0.0],
    }
)

LINES = pd.DataFrame(
    {
        "line_id": [1, 2, 3, 4, 5],
        "body": ["council", "council", "council", "council", "council"],
        "line": ["A", "B", "C", "D", "E"],
        "cofog_code": ["09", "10", "01", "10", "07"],
        "amount_pence": [100_000, -1_000, 1, 333, 700],
        "area_set": ["fx-borough", "fx-borough", "fx-borough", "fx-borough", "fx-wards"],
        "area_code": ["B", "B", "B", "B", "W2"],
        "proxy": ["residents-all", "residents-0-15", "residents-all", "residents-65-plus",
                  "residents-all"],
    }
)

EXPECTED_WARD_PENCE = {"W1": 87_251, "W2": 12_783}
EXPECTED_WARD_PENCE_BY_LINE = {
    ("A", "W1"): 87_500, ("A", "W2"): 12_500,
    ("B", "W1"): -500, ("B", "W2"): -500,
    ("C", "W1"): 1,
    ("D", "W1"): 250, ("D", "W2"): 83,
    ("E", "W2"): 700,
}
