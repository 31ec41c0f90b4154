"""Services: the only code that touches both the domain and the database. They own transactions."""
