"""SIP extension on PJSUA2: the only package that imports pjsua2.

Use `edgecall.telephony.service.Telephony`; events are in `telephony.events`.
"""
