"""Tenant-authored notice templates: sandboxed rendering, documented variables, SMS length."""
