"""`booking-worker demo`: the whole flow on one machine, through the real processes.

`fleet` starts Redis (embedded unless a URL is given), the Korus sandbox and the
Procfile's web, worker, payments and beat processes (and Flower with `--serve`);
`bookings` builds a mix of requests from the sandbox catalog; `traffic` creates them
through the merchant API and pays each with a Stripe-signed webhook over HTTP; `report`
checks every paid booking against the sandbox's own orders and prints the summary.
"""

from worker.demo.report import DemoReport
from worker.demo.run import DemoOptions, run_demo

__all__ = ["DemoOptions", "DemoReport", "run_demo"]
