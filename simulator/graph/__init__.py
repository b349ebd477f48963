"""Model graph (networkx) and its lowering to an operator table of cost formulas."""
