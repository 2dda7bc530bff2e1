"""ILS, the image labelling service: labellers behind one interface (weak, user, vision)."""
