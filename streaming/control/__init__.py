"""The control plane: what ``model.updates`` says and who serves what.

- :mod:`~streaming.control.updates`: every ModelUpdate driftloop writes is built here;
- :mod:`~streaming.control.plan`: the one fold of ModelUpdates into a serving plan, and the
  canary bucket of an account;
- :mod:`~streaming.control.follower`: reading ``model.updates`` (catch up, then follow);
- :mod:`~streaming.control.manual`: promotion and rollback by hand.
"""
