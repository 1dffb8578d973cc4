"""Leaf helpers that every layer may use and that import nothing else of the project: code
encryption (crypto), the one supplier HTTP seam (http), money as Decimal with ISO 4217
currencies (money), and the per-vendor request budget (ratelimit)."""
