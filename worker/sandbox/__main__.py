"""`python -m worker.sandbox [OPTIONS]`: the same command as `booking-worker sandbox`."""

from worker.sandbox.command import sandbox

if __name__ == "__main__":
    sandbox(prog_name="python -m worker.sandbox")
