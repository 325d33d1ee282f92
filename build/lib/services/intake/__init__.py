"""Intake: requests for a conference, from submission to acceptance (aanvraag)."""
