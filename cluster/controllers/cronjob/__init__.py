"""The CronJob controller (kube-controller-manager's ``cronjob``).

Pure parts: :mod:`.schedule` (cron expressions, time zones, missed times) and :mod:`.sync` (the
reconcile core and history limits); :mod:`.controller` is the shell over the listers and the client.
"""

from cluster.controllers.cronjob.controller import CronJobController

__all__ = ["CronJobController"]
