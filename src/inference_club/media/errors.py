"""The one error of the media helpers.

MediaError(ValueError)   audio that is not a recognised format, or cannot be decoded or measured;
                         the message is safe to show the client who sent the file.
"""


class MediaError(ValueError):
    """Audio that is not a recognised format, or that cannot be decoded or measured."""
