"""Pure rules that need more than one pass: a schedule's due times, idle models and cold starts, the
gateway counts ledger, drift of a child from what was applied, replica handover to an HPA."""
