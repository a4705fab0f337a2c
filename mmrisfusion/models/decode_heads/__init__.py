from .simple_decoding_head import SimpleDecodingHead

__all__ = ['SimpleDecodingHead']
