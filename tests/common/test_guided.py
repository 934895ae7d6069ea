"""The guided filter's fit: the closed-form 3x3 solve agrees with LAPACK, and the maps reproduce a target that
is an affine colour map of the guide."""

from __future__ import annotations

import numpy as np

from services.common.guided import apply_rows, guided_coefficients, solve_symmetric3


def test_the_closed_form_solve_matches_lapack_on_well_and_badly_conditioned_systems():
    rng = np.random.default_rng(3)
    x = rng.random((500, 3, 3))
    matrices = (x @ x.transpose(0, 2, 1) + np.array([1e-4, 1.0])[rng.integers(0, 2, 500), None, None] * np.eye(3))
    matrices = matrices.astype(np.float32)
    rhs = rng.random((500, 3, 2)).astype(np.float32)
    exact = np.linalg.solve(matrices.astype(np.float64), rhs.astype(np.float64))
    got = solve_symmetric3(matrices, rhs)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4 * np.abs(exact).max())


def test_maps_fitted_at_low_resolution_carry_an_affine_colour_change_to_full_resolution():
    rng = np.random.default_rng(5)
    guide = rng.random((64, 80, 3)).astype(np.float32)
    matrix = np.array([[0.9, 0.1, 0.0], [0.0, 0.8, 0.1], [0.05, 0.0, 1.1]], np.float32)
    target = guide @ matrix + np.array([0.02, -0.01, 0.03], np.float32)
    maps = guided_coefficients(guide, target, radius=2, eps=1e-6)
    mapped = apply_rows(guide, maps, slice(0, 64), (64, 80))
    assert np.abs(mapped - target).max() < 2e-3
