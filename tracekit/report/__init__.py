"""One self-contained, offline HTML report: overview, model drawing, module tree, ops, parallel, comparison."""
