"""Fit a compiled fusion block to a teacher: the tutorial's training loop (docs/tutorial.md).

    python examples/train_edge_message.py

Compiles examples/diagrams/edge_message.fus in-process, makes two randomly
initialised copies of the EdgeMessage module (a teacher and a student), and
trains the student with Adam on random inputs until it reproduces the
teacher.  Runs on the CPU in well under a minute.
"""
from pathlib import Path

import torch

import fusionlang.api

HERE = Path(__file__).resolve().parent
program = fusionlang.api.compile_file(HERE / "diagrams" / "edge_message.fus")
EdgeMessage = program.modules["EdgeMessage"]          # a torch.nn.Module class

torch.manual_seed(0)
teacher = EdgeMessage()                               # weights ~ N(0, 1), fixed
student = EdgeMessage()                               # another random draw, to be trained
for p in teacher.parameters():
    p.requires_grad_(False)

plan = program.plans["EdgeMessage"]
diagram = plan.diagram
dims = ", ".join(f"{w}: {diagram.irreps(w)} (dim {diagram.irreps(w).dim})" for w in diagram.inputs)
print(f"EdgeMessage: {plan.n_paths} paths, {plan.weight_numel} weights; inputs {dims}")

optimizer = torch.optim.Adam(student.parameters(), lr=0.05)
batch = 128
for step in range(1, 301):
    h = torch.randn(batch, 144)                       # 16x(0e + 1o + 2e) node features
    y = torch.randn(batch, 9)                         # 0e + 1o + 2e, e.g. spherical harmonics
    loss = (student(h, y) - teacher(h, y)).pow(2).mean()
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
    if step == 1 or step % 50 == 0:
        print(f"step {step:3d}  loss {loss.item():.3e}")

gap = (student.m_weight - teacher.m_weight).abs().max().item()
print(f"largest weight difference to the teacher: {gap:.1e}")
