"""`python -m korus_sandbox [OPTIONS]`: the same command as `booking-worker sandbox`."""

from korus_sandbox.command import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m korus_sandbox")
