"""losses/sigmoid"""
