"""The sandbox acquirer: a bank for development, demos and tests.

It speaks the same HTTP API and signed callbacks as a real acquirer (docs/bank-api.md), keeps
its own database, simulates customer wallets paying Kassa's dynamic QR codes, and writes ISO 20022
settlement files. Start it with ``kassa sandbox-bank serve``; build it with
:func:`sandbox_bank.app.create_app`.

==========================================  ==================================================
route                                       what
==========================================  ==================================================
``GET /v1/payments/{reference}``            a paid payment (bearer API key, as all of /v1)
``POST /v1/refunds``                        refund, ``Idempotency-Key`` required; 201 pending
``GET /v1/refunds/{refund_id}``             a refund's state
``POST /v1/settlements``                    settle ``{"date": "YYYY-MM-DD"}`` (once per date)
``GET /v1/settlements/{date}``              the settlement's sums and file links
``GET /v1/settlements/{date}/{file}``       ``camt053.xml``, ``camt054.xml``, ``settlement.csv``
``GET /v1/settlements/{date}.csv``          the CSV again, by the contract's short name
``GET|POST /sandbox/``                      the page: scan and pay, recent activity, faults
``POST /sandbox/wallet/pay``                ``{payload, wallet_id}``: a wallet pays a QR code
``GET|PUT /sandbox/wallets/{id}``           a wallet's balance (PUT sets it)
``GET|PUT|DELETE /sandbox/merchants/{id}/faults``  fault injection (see :mod:`.faults`)
``GET /sandbox/deliveries``                 recent callbacks with every attempt
==========================================  ==================================================
"""
