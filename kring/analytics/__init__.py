"""What analysts take from the KRING stream: the facts of each case folded from its integration
events (``facts``), the field's figures computed from them (``figures``), pseudonymised columnar
exports (``export``) and a report with charts (``report``). Nothing here reads a service's store:
the stream is the record, and it carries no personal data."""
