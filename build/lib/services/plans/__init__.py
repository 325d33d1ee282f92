"""Plans: writing up the family's plan after the conference, and distributing it."""
