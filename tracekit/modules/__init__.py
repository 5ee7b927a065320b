"""The nn.Module view: which module every event belongs to, and what each module is and costs."""
