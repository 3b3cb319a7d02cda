"""Reports for the back office: the turnover sheet per provider and service, the debtors
list, the penalties register; each as CSV and PDF."""
