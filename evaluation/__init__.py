"""Measurement of the product, apart from it: benchmarks and evaluations (README, "Architecture").

Imports point one way: evaluation → kb, chat, api, insights (and config's process tooling); no product app
imports evaluation (tests/test_layers.py checks).
"""
