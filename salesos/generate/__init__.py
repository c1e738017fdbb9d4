"""Deterministic sample CRM exports, shaped like a Salesforce data export, for demos and tests."""

from salesos.generate.sample_crm import SCALES, Scale, generate

__all__ = ["SCALES", "Scale", "generate"]
