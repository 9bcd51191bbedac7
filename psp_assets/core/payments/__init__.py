"""Payment facts shared by every plugin and check: the canonical statuses and transitions (statuses), IBAN and
BIC rules (iban), ISO 4217 currencies and minor units (iso4217), and the PSP API contract (openapi)."""
