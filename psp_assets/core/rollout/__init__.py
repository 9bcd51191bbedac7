"""Rolling a release out over a fleet: waves and their order (waves), the KPI analysis of switched stores
against their baseline and controls (analysis), and the payment gate between waves (gate)."""
