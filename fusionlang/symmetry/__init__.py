"""The symmetry layer: groups and irreps, coupling coefficients (CG, 3j, 6j, 9j) and their cache, the
real-basis change, fusion paths, coupling tensors of fusion trees, Wigner D, symmetric-power bases.
It imports only the base layer (diagnostics, files; docs/architecture.md)."""
