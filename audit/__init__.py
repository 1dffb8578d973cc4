"""The audit trail: who did what to which object, written in the same transaction as the change.

Every app writes to it (``audit.services.record``) and it imports no app of the project: its
rows point at orders by a lazy reference, so its migrations sit above orders while its code
sits below every app that writes. The pages that read it (``/audit/``) are portal's.
"""
