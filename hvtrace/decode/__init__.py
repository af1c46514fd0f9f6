"""Pure-Python decoders for VT-x and AMD-V state: the layer the gdb extension, the TUI and reports share.

Stdlib only (plus hvtrace.abi, itself stdlib only), so gdb's embedded Python (Debian's /usr/bin/python3,
no venv) imports it. Both back ends are split the same way:

==========================  =====================================  ======================================
role                        VT-x (Intel SDM Vol. 3)                AMD-V (AMD APM Vol. 2)
==========================  =====================================  ======================================
layout                      :mod:`vmcs_fields` (3D App. B)         :mod:`svm_vmcb` (App. B)
control bits                :mod:`vmx_controls`                    :mod:`svm_controls`
exit reasons                :mod:`vmx_exits` (3D App. C)           :mod:`svm_exits` (App. C, EXITINFO)
qualifications              :mod:`vmx_qualifications` (3C 28.2)    (in :mod:`svm_exits`)
snapshot view               :mod:`vmcs_view`                       :mod:`vmcb_view`
==========================  =====================================  ======================================

- :mod:`~hvtrace.decode.vendor`: one object per back end (the twin of C ``struct hv_backend``): what
  differs between VT-x and AMD-V; nothing else compares vendor numbers.
- :mod:`~hvtrace.decode.record_meaning`: what an exit record means (kinds, operands, drill-downs), the
  discovery-header checks and ring-slot reading, for every tool.
- :mod:`~hvtrace.decode.stage2`: EPT / NPT entries, walks and whole-map summaries.
- :mod:`~hvtrace.decode.guest_paging`: guest-virtual to guest-physical through the guest's own tables.
"""
