"""The cost model shared by the checker and the planner: limits on what a compile may allocate and their
estimates (budget.py), and the search for pairwise contraction orders (contract_order.py)."""
