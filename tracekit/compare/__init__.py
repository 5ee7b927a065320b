"""Two profiles aligned module by module and op by op (`tracekit compare`)."""
