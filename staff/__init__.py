"""Gmina staff: accounts and roles. The admin screens build on this."""
