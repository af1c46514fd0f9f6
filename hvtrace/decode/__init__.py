"""Pure-Python decoders for VT-x and AMD-V state: the layer the gdb extension and reports share.

Stdlib only, so gdb's embedded Python (Debian's /usr/bin/python3, no venv) imports it:

- :mod:`~hvtrace.decode.vmcs_fields`: VMCS field encodings (Intel SDM Vol. 3D Appendix B).
- :mod:`~hvtrace.decode.vmx_controls`: control bits, access rights, interruptibility, VM-instruction errors.
- :mod:`~hvtrace.decode.vmx_exits`: basic exit reasons and exit-qualification layouts (Vol. 3D C, 3C 28.2).
- :mod:`~hvtrace.decode.vmcs_view`: a VMCS snapshot as grouped, decoded text (KVM dump_vmcs() style).
- :mod:`~hvtrace.decode.svm_vmcb`: VMCB layout, SVM exit codes, EXITINFO decoders, view (AMD APM Vol. 2).
- :mod:`~hvtrace.decode.stage2`: EPT / NPT entries, walks and whole-map summaries.
"""
