import json

import geopandas as gpd
import pytest
from shapely.geometry import Point, Polygon, box

from geolulc.core.grid import choose_crs
from geolulc.errors import GeolulcError
from geolulc.io.aoi import load_aoi


def write_geojson(path, geometry, crs="EPSG:4326"):
    gpd.GeoDataFrame({"id": [1]}, geometry=[geometry], crs=crs).to_file(path)
    return path


def test_geojson_is_read_in_wgs84(tmp_path):
    aoi = load_aoi(write_geojson(tmp_path / "a.geojson", box(2.30, 48.80, 2.36, 48.85)))
    assert aoi.geometry.bounds == pytest.approx((2.30, 48.80, 2.36, 48.85))
    # 0.06° × 0.05° at 48.8° N: 4.40 km × 5.56 km
    assert aoi.area_km2 == pytest.approx(24.5, rel=0.01)
    assert choose_crs(aoi.geometry, None).to_epsg() == 32631


def test_geopackage_in_a_projected_crs_is_reprojected(tmp_path):
    # the same square given in Web Mercator must come back as the same lon/lat box
    src = gpd.GeoSeries([box(2.30, 48.80, 2.36, 48.85)], crs=4326).to_crs(3857).iloc[0]
    aoi = load_aoi(write_geojson(tmp_path / "a.gpkg", src, crs="EPSG:3857"))
    assert aoi.geometry.bounds == pytest.approx((2.30, 48.80, 2.36, 48.85), abs=1e-9)


def test_shapefile_without_prj_is_refused(tmp_path):
    path = write_geojson(tmp_path / "a.shp", box(0, 0, 1, 1))
    path.with_suffix(".prj").unlink()
    with pytest.raises(GeolulcError, match="unknown CRS"):
        load_aoi(path)


@pytest.mark.parametrize("content,message", [
    ({"type": "FeatureCollection", "features": []}, "no geometry"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
      "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1], [1, 0], [0, 1], [0, 0]]]}}]},
     "invalid: Self-intersection"),
    ({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
      "geometry": {"type": "Point", "coordinates": [0, 0]}}]}, "must contain polygons"),
])
def test_bad_geometries(tmp_path, content, message):
    path = tmp_path / "bad.geojson"
    path.write_text(json.dumps(content))
    with pytest.raises(GeolulcError, match=message):
        load_aoi(path)


def test_too_large_and_unreadable(tmp_path):
    big = write_geojson(tmp_path / "big.geojson", box(0, 0, 5, 5))  # ~300,000 km²
    with pytest.raises(GeolulcError, match="more than the limit"):
        load_aoi(big)
    assert load_aoi(big, max_area_km2=1e6).area_km2 == pytest.approx(307_900, rel=0.01)
    junk = tmp_path / "junk.geojson"
    junk.write_text("{not json")
    with pytest.raises(GeolulcError, match="cannot read AOI"):
        load_aoi(junk)
    with pytest.raises(GeolulcError, match="does not exist"):
        load_aoi(tmp_path / "missing.geojson")


def test_multiple_features_are_merged(tmp_path):
    path = tmp_path / "two.geojson"
    gpd.GeoDataFrame(geometry=[box(0, 0, 0.1, 0.1), Point(0.3, 0.3).buffer(0.05)],
                     crs=4326).to_file(path)
    aoi = load_aoi(path)
    assert aoi.geometry.geom_type == "MultiPolygon"
    assert isinstance(aoi.geometry.geoms[0], Polygon)
