"""The engine: bind an operator table to a device and stack (bind, placement, collectives,
energy coefficients), then run the numba kernels (kernels/): one scenario (predict), arrays of
them (batch), the fewest devices that hold a model (sizing), operators under the roofs
(roofline_points). Takes spec objects only; names are resolved at simulator/api.py."""
