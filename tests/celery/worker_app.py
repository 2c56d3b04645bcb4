"""The module a test's ``celery worker`` imports (``celery -A tests.celery.worker_app``).

Like a user's worker module: it builds the same Flask app as the web process (on the tables the
test created) and hands the Celery app to ``seat_billing.use_celery``. What to build comes from
``FSB_CELERY_WORKER`` (JSON), written by the test's fixture.
"""

from __future__ import annotations

import json
import os

from flask_seat_billing import Plan, Product
from tests.apps import attach_app, build_app
from tests.celery.support import celery_app

_spec = json.loads(os.environ["FSB_CELERY_WORKER"])
celery = celery_app(_spec["broker"], _spec["tag"])
if _spec.get("products"):  # another provider's plans (the behaviour suite's worlds)
    flask_app = build_app(_spec["database_url"], config=_spec["config"], create=False,
                          products=eval(_spec["products"], {"Plan": Plan, "Product": Product}))
else:
    flask_app = attach_app(_spec["database_url"], _spec["stripe_url"], **_spec["config"])
flask_app.billing.use_celery(celery, flask_app.app)
