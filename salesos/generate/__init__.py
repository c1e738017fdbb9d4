"""Deterministic sample CRM exports, shaped like a Salesforce data export, for demos and tests."""

from salesos.generate.hubspot import generate_hubspot
from salesos.generate.sample_crm import SCALES, Scale, generate

__all__ = ["SCALES", "Scale", "generate", "generate_hubspot"]
