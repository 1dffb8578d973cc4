"""Forms of the two-factor pages. The codes they take are secrets: never logged or echoed."""

from django import forms

CODE_WIDGET = forms.TextInput(attrs={
    "autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false",
    "autofocus": True,
})


class CodeForm(forms.Form):
    code = forms.CharField(label="Code", max_length=32, widget=CODE_WIDGET, strip=True,
                           help_text="The 6 digits your authenticator app shows, or one of "
                                     "your recovery codes.")


class AuthenticatorCodeForm(forms.Form):
    code = forms.CharField(label="Code from your authenticator app", max_length=16,
                           widget=CODE_WIDGET, strip=True)


class ReauthenticateForm(forms.Form):
    password = forms.CharField(label="Password", strip=False, max_length=4096,
                               widget=forms.PasswordInput(attrs={
                                   "autocomplete": "current-password", "autofocus": True}))
    code = forms.CharField(label="Code from your authenticator app", max_length=16,
                           widget=forms.TextInput(attrs={"autocomplete": "one-time-code"}),
                           strip=True)
