"""`python -m local_stack`: the whole server on one machine, as `make run` starts it (PRODUCT.md section 5)."""
