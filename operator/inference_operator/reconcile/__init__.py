"""The controller: one reconcile pass of a service, its pass slots and queue, its record, child sync."""
