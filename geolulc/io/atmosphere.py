"""Top-of-atmosphere-like reflectance from an L2A product, for models trained on L1C.

Sen2Cor's L2A removes the atmosphere: the path radiance that brightens the visible bands of
L1C (Rayleigh and aerosol scattering), the attenuation on the way down and up, and ozone
absorption. A model trained on L1C (Dynamic World, the EuroSAT classifiers) sees L2A as a
darker, bluer-less world: towns become vegetation and smooth land becomes water. This module
puts a modelled atmosphere back, per pixel, from the product's own metadata: the sun elevation
of the item and its aerosol optical thickness layer (AOT at 550 nm).

The approximation (Lambertian surface, near-nadir view, single scattering for the path term;
Vermote et al. 1997 form, coefficients from Hansen & Travis 1974 and Tanré et al. 1979):

    ρ_TOA = T_gas · ( ρ_path + T(μs) T(μv) ρ / (1 − S ρ) )
    τ_R(λ) = 0.008569 λ⁻⁴ (1 + 0.0113 λ⁻² + 0.00013 λ⁻⁴)         (λ in µm)
    τ_a(λ) = AOT550 (λ / 0.55)^−1.3                               (continental Ångström exponent)
    ρ_path = (τ_R P_R(Θ) + ω τ_a P_a(Θ)) / (4 μs μv),  P_R = ¾ (1 + cos²Θ),
             P_a Henyey–Greenstein (g = 0.65), ω = 0.93, cos Θ = −μs μv + sinθs sinθv
    T(μ)   = exp(−(τ_R / 2 + 0.16 τ_a) / μ)        (direct + forward-diffuse transmittance)
    S      = 0.92 τ_R e^−τ_R + 0.15 τ_a            (spherical albedo)
    T_gas  = exp(−k_O3(λ) · 0.3 atm-cm · (1/μs + 1/μv))            (ozone, Chappuis band)

Water vapour absorption (B8A, B09, B11, B12 are slightly affected) and adjacency effects are
left out. For a 48° sun and AOT 0.2 it adds about 650 DN to B02, 400 to B03 and 230 to B04.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from geolulc.io.blocks import row_blocks

log = logging.getLogger(__name__)

#: Central wavelengths (µm) of the Sentinel-2A MSI bands.
WAVELENGTH_UM = {
    "B01": 0.443, "B02": 0.492, "B03": 0.560, "B04": 0.665, "B05": 0.704, "B06": 0.740,
    "B07": 0.783, "B08": 0.833, "B8A": 0.865, "B09": 0.945, "B10": 1.374, "B11": 1.614,
    "B12": 2.202,
}
#: Ozone absorption coefficients (atm-cm⁻¹) over each band.
OZONE_K = {"B01": 0.003, "B02": 0.021, "B03": 0.104, "B04": 0.051, "B05": 0.021, "B06": 0.011,
           "B07": 0.008, "B08": 0.004, "B8A": 0.002}
OZONE_ATM_CM = 0.3
ANGSTROM = 1.3
AEROSOL_G = 0.65
AEROSOL_OMEGA = 0.93
VIEW_ZENITH_DEG = 5.0  # Sentinel-2 looks within ±10.3° of nadir; the mid value is used
#: AOT used where the product has no AOT layer (a clear continental atmosphere).
DEFAULT_AOT = 0.15
#: Sen2Cor stores AOT × 1000.
AOT_QUANTIFICATION = 1000.0


def _terms(
    band: str, sun_zenith_deg: float, aot: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.floating]:
    """Path reflectance, total transmittance, spherical albedo and gas transmittance."""
    lam = WAVELENGTH_UM[band]
    mu_s = np.cos(np.radians(sun_zenith_deg))
    theta_v = np.radians(VIEW_ZENITH_DEG)
    mu_v = np.cos(theta_v)
    tau_r = 0.008569 * lam ** -4 * (1 + 0.0113 * lam ** -2 + 0.00013 * lam ** -4)
    tau_a = aot * (lam / 0.55) ** -ANGSTROM
    cos_scatter = -mu_s * mu_v + np.sin(np.radians(sun_zenith_deg)) * np.sin(theta_v)
    p_r = 0.75 * (1 + cos_scatter ** 2)
    g = AEROSOL_G
    p_a = (1 - g * g) / (1 + g * g - 2 * g * cos_scatter) ** 1.5
    path = (tau_r * p_r + AEROSOL_OMEGA * tau_a * p_a) / (4 * mu_s * mu_v)
    trans = np.exp(-(tau_r / 2 + 0.16 * tau_a) * (1 / mu_s + 1 / mu_v))
    albedo = 0.92 * tau_r * np.exp(-tau_r) + 0.15 * tau_a
    gas = np.exp(-OZONE_K.get(band, 0.0) * OZONE_ATM_CM * (1 / mu_s + 1 / mu_v))
    return path, trans, albedo, gas


def boa_to_toa(dn: np.ndarray, band: str, sun_zenith_deg: float,
               aot: np.ndarray | float | QuantisedAot) -> np.ndarray:
    """Bottom-of-atmosphere DN (reflectance × 10000) → modelled top-of-atmosphere DN (uint16).

    0 (no data) stays 0. `aot` is a value, a per-pixel layer, or that layer quantised once for
    all bands (`quantise_aot`).

    With one AOT or a quantised layer, the result of every (AOT value, DN) pair the band holds
    is computed once into a table and looked up (a tile's chunk: 11 AOT values × 7,000 DNs), 6×
    faster than computing each pixel and the very same numbers. Otherwise it is computed in
    blocks of rows that stay in the CPU cache (14× faster than whole-array numpy).
    """
    if not isinstance(aot, QuantisedAot):
        aot = quantise_aot(aot)
    table_values = (aot.values if isinstance(aot, QuantisedAot)
                    else aot.reshape(1) if aot.ndim == 0 else None)
    if table_values is not None and dn.dtype == np.uint16 and dn.size:
        top = int(dn.max())
        if len(table_values) * (top + 1) <= LOOKUP_ENTRIES:
            table = _restore(np.arange(top + 1, dtype=np.uint16)[None, :],
                             _terms(band, sun_zenith_deg, table_values[:, None]))
            return _looked_up(dn, table, aot.codes if isinstance(aot, QuantisedAot) else None)
    out = np.empty(dn.shape, dtype=np.uint16)
    if isinstance(aot, QuantisedAot):
        per_value = _terms(band, sun_zenith_deg, aot.values)
        for rows in row_blocks(dn.shape):
            index = aot.codes[rows]
            out[rows] = _restore(dn[rows], (*(t[index] for t in per_value[:3]), per_value[3]))
    elif aot.shape == dn.shape:  # a layer off Sen2Cor's grid: terms per pixel
        for rows in row_blocks(dn.shape):
            out[rows] = _restore(dn[rows], _terms(band, sun_zenith_deg, aot[rows]))
    else:
        terms = _terms(band, sun_zenith_deg, aot)
        for rows in row_blocks(dn.shape):
            out[rows] = _restore(dn[rows], terms)
    return out


#: The most (AOT value, DN) pairs `boa_to_toa` tabulates (8 MB of uint16); beyond, it computes.
LOOKUP_ENTRIES = 1 << 22


def _restore(dn: np.ndarray, terms: tuple[np.ndarray | np.floating, ...]) -> np.ndarray:
    """The TOA DNs of BOA DNs `dn` under the atmosphere `terms` (broadcast against `dn`)."""
    path, trans, albedo, gas = terms
    rho = dn.astype(np.float32) / 10000
    toa = gas * (path + trans * rho / (1 - albedo * rho))
    return np.where(dn > 0, np.clip(np.round(toa * 10000), 1, 65535), 0).astype(np.uint16)


def _looked_up(dn: np.ndarray, table: np.ndarray, codes: np.ndarray | None) -> np.ndarray:
    """`table[codes, dn]` (or `table[0, dn]` without codes), in cache-sized blocks of rows."""
    flat = table.ravel()
    out = np.empty(dn.shape, dtype=np.uint16)
    for rows in row_blocks(dn.shape):
        index = dn[rows].astype(np.intp)
        if codes is not None:
            index += codes[rows] * table.shape[1]
        np.take(flat, index, out=out[rows], mode="clip")  # in range by construction
    return out


@dataclass(frozen=True)
class QuantisedAot:
    """A per-pixel AOT layer as indices into the few distinct values it holds."""

    values: np.ndarray  # float32, every value from the smallest to the largest code
    codes: np.ndarray  # index of each pixel's value


def quantise_aot(aot: np.ndarray | float) -> QuantisedAot | np.ndarray:
    """An AOT layer on Sen2Cor's 0.001 grid as values and codes, to compute terms once per value.

    Sen2Cor quantises AOT to 0.001, so a layer holds few distinct values: the terms computed
    once per value and looked up are the very numbers a per-pixel computation gives. A value,
    or a layer off that grid, is returned as it is.
    """
    aot = np.asarray(aot, dtype=np.float32)
    if aot.size < 4096:
        return aot
    codes = np.rint(aot * np.float32(AOT_QUANTIFICATION)).astype(np.int32)
    low, high = int(codes.min()), int(codes.max())
    if high - low > 65535:
        return aot
    values = np.arange(low, high + 1).astype(np.float32) / AOT_QUANTIFICATION
    codes -= low
    for rows in row_blocks(aot.shape):
        if not np.array_equal(values[codes[rows]], aot[rows]):
            return aot
    return QuantisedAot(values, codes)


def toa_to_boa(dn: np.ndarray, band: str, sun_zenith_deg: float, aot: np.ndarray | float
               ) -> np.ndarray:
    """The inverse of `boa_to_toa` (an atmospheric correction with the same model).

    Used to simulate L2A from L1C when measuring how much the correction changes a map.
    """
    path, trans, albedo, gas = _terms(band, sun_zenith_deg, np.asarray(aot, dtype=np.float32))
    y = dn.astype(np.float32) / 10000 / gas - path
    rho = y / (trans + albedo * y)
    return np.where(dn > 0, np.clip(np.round(rho * 10000), 1, 65535), 0).astype(np.uint16)
