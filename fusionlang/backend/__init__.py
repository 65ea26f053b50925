"""The backend: checked Diagram -> Plan (plan.py: paths, weights, operator form, contraction orders,
gather/scatter placement) -> Python source of a torch.nn.Module (emit_torch.py)."""
