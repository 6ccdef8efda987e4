"""stackha: a highly available Nginx + MyCat stack with its configuration kept in ZooKeeper."""

__version__ = "0.1.0"
