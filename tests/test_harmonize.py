import re

import numpy as np
import pytest

from geolulc.io.harmonize import baseline_offset, harmonise, parse_baseline


@pytest.mark.parametrize("text,expected", [
    ("04.00", (4, 0)), ("02.14", (2, 14)), ("05.11", (5, 11)), ("N0500", (5, 0)),
    ("S2B_MSIL2A_20220413T150759_N0400_R025_T33XWJ_20220414T082126.SAFE", (4, 0)),
    ("S2A_29RKH_20200219_0_L2A", None), (None, None),
])
def test_parse_baseline(text, expected):
    assert parse_baseline(text) == expected


def test_offset_starts_at_baseline_04_00():
    assert baseline_offset((3, 1)) == 0
    assert baseline_offset((4, 0)) == 1000
    assert baseline_offset((5, 9)) == 1000
    assert baseline_offset(None) == 0


def test_harmonise_exact_values():
    dn = np.array([0, 1, 999, 1000, 1001, 3456, 65535], dtype=np.uint16)
    assert harmonise(dn, 1000).tolist() == [0, 1, 1, 1, 1, 2456, 64535]
    assert harmonise(dn, 0).tolist() == dn.tolist()


def test_offsets_agree_with_real_safe_metadata(data_dir):
    """Every real product's declared ADD_OFFSET matches what its baseline implies."""
    files = sorted((data_dir / "metadata" / "safe-metadata").glob("*.SAFE/MTD_MSI*.xml"))
    assert len(files) >= 8
    seen = set()
    for path in files:
        text = path.read_text()
        baseline = parse_baseline(re.search(r"<PROCESSING_BASELINE>([^<]+)<", text).group(1))
        offsets = {int(v) for v in re.findall(r"ADD_OFFSET band_id=\"\d+\">(-?\d+)<", text)}
        expected = baseline_offset(baseline)
        assert offsets == ({-expected} if expected else set()), path.name
        seen.add(expected)
    assert seen == {0, 1000}  # both sides of the change are covered
