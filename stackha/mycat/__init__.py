"""MyCat 1.6 configuration support: validation of schema.xml, server.xml and rule.xml."""
