"""Warning rules, graded alarms (levels I-IV) and their audit trail."""
